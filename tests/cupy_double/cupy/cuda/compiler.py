"""``cupy.cuda.compiler`` of the device double: the exception a failed compile raises."""


class CompileException(Exception):
    """As ``cupy.cuda.compiler.CompileException``: ``str()`` is the compiler's log."""

    def __init__(self, msg, source, name, options, backend="nvrtc"):
        self._msg = msg
        self.source, self.name, self.options, self.backend = source, name, options, backend
        super().__init__()

    def __str__(self):
        return self._msg

    def get_message(self):
        return self._msg
