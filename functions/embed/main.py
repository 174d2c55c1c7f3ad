"""Pipeline stage `embed`, invoked by its Cloud Tasks queue."""

import functions_framework

from ragline.api import task_endpoint

embed = functions_framework.http(task_endpoint("embed"))
