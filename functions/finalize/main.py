"""Pipeline stage `finalize`, invoked by its Cloud Tasks queue."""

import functions_framework

from ragline.api import task_endpoint

finalize = functions_framework.http(task_endpoint("finalize"))
