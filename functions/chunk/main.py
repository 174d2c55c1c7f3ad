"""Pipeline stage `chunk`, invoked by its Cloud Tasks queue."""

import functions_framework

from ragline.api import task_endpoint

chunk = functions_framework.http(task_endpoint("chunk"))
