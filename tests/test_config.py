"""Configuration values are refused by name before anything is allocated."""
import pytest

from spatialdtp.api import load_config
from spatialdtp.config import ConfigError, DrugConfig, validate


def quick():
    return load_config(["experiment=quick"])


@pytest.mark.parametrize("name", ["P", "S", "vessels", "auc_drug"])
def test_a_drug_may_not_take_the_name_of_a_cell_field_or_exposure_map(name):
    cfg = quick()
    cfg.treatment.drugs[name] = DrugConfig()
    with pytest.raises(ConfigError, match=f"treatment.drugs.{name}="):
        validate(cfg)


@pytest.mark.parametrize("override,key", [
    ("run.hypoxic_threshold=nan", "run.hypoxic_threshold"),
    ("tissue.tumour.radius=-100", "tissue.tumour.radius"),
    ("tissue.tumour.center=[3,-2]", "tissue.tumour.center"),
    ("tissue.vessels.margin=-50", "tissue.vessels.margin"),
    ("seed=-1", "seed"),
    ("objective.metric=ttp", "objective.metric"),
    ("numerics.scheme=rk4", "numerics.scheme"),
])
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=f"^{key}="):
        load_config(["experiment=quick", override])
