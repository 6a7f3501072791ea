"""Task suites: named collections of tasks. ``load_suite(name, **options)`` builds one."""

from pait.tasks.base import PROTOCOLS, Task, TaskData, split_indices
from pait.tasks.decode import FileImage, decode
from pait.tasks.suites import SUITES, load_suite

__all__ = ["PROTOCOLS", "SUITES", "FileImage", "Task", "TaskData", "decode", "load_suite", "split_indices"]
