"""Pipeline stage `parse` (files: PDF, HTML, DOCX → text), invoked by its Cloud Tasks queue."""

import functions_framework

from ragline.api import task_endpoint

parse = functions_framework.http(task_endpoint("parse"))
