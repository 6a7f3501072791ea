"""Task suites: named collections of tasks. ``load_suite(name, **options)`` builds one."""

from pait.tasks.base import PROTOCOLS, Task, TaskData, decode, split_indices
from pait.tasks.suites import SUITES, load_suite

__all__ = ["PROTOCOLS", "SUITES", "Task", "TaskData", "decode", "load_suite", "split_indices"]
