"""Chronos-2's inference forward in plain torch (:mod:`.model`), loaded from a model folder with json and
safetensors only (:mod:`.loading`), so a run whose checks are stored never imports chronos or transformers.
The engine runs it only after :mod:`chronobt.engine.views.native` found it equal to chronos' own forward.
"""
