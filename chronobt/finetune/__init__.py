"""Walk-forward fine-tuning (``--finetune lora|full``): :mod:`.walkforward` plans the refits and forecasts
with them, :mod:`.training` fine-tunes and caches one model. A sweep's fine-tuned cells are sweep cells:
:mod:`chronobt.runs.finetune_cells`."""

from chronobt.finetune.training import (
    FinetuneSettings,
    TrainingSeries,
    require_peft,
    weights_checksum,
)
from chronobt.finetune.walkforward import (
    Member,
    ModelPlan,
    Refit,
    base_checksum_of,
    finetune_engines,
    fit_models,
    forecast_refits,
    plan_models,
    plan_refits,
    refit_of,
    symbol_record,
    training_series,
)

__all__ = [
    "FinetuneSettings",
    "Member",
    "ModelPlan",
    "Refit",
    "TrainingSeries",
    "base_checksum_of",
    "finetune_engines",
    "fit_models",
    "forecast_refits",
    "plan_models",
    "plan_refits",
    "refit_of",
    "require_peft",
    "symbol_record",
    "training_series",
    "weights_checksum",
]
