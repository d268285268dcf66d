"""Checked forward views: faster forwards of chronos' model, each compared with the full forward at run
time and used only when equal (:mod:`.check`); the output-only last block (:mod:`.lastblock`), per-task
group attention (:mod:`.group_attention`) and task-chunked encoder blocks (:mod:`.task_chunks`).
"""
