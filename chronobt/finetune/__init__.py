"""Walk-forward fine-tuning (``--finetune lora|full``): :mod:`.walkforward` plans the refits and forecasts
with them, :mod:`.training` fine-tunes and caches one model."""

from chronobt.finetune.training import (
    DEFAULT_LR,
    DEFAULT_STEPS,
    FinetuneSettings,
    require_peft,
    weights_checksum,
)
from chronobt.finetune.walkforward import (
    Refit,
    finetune_engines,
    forecast_refits,
    plan_refits,
    refit_of,
    symbol_record,
    training_series,
)

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "FinetuneSettings",
    "Refit",
    "finetune_engines",
    "forecast_refits",
    "plan_refits",
    "refit_of",
    "require_peft",
    "symbol_record",
    "training_series",
    "weights_checksum",
]
