"""Task suites: named collections of tasks. ``load_suite(name, **options)`` builds one."""

from pait.tasks.base import PROTOCOLS, Task, TaskData, split_indices
from pait.tasks.decode import FileImage, decode
from pait.tasks.suites import SKIP_BAD, SUITES, check_suite_options, load_suite

__all__ = ["PROTOCOLS", "SKIP_BAD", "SUITES", "FileImage", "Task", "TaskData", "check_suite_options", "decode", "load_suite",
           "split_indices"]
