"""`answer`: POST {question, top_k?, filters?, params?, parent_run_id?, scenario_label?} →
an answer with citations from the caller's org, recorded as a run."""

import functions_framework
from flask import Request

from ragline.api import Context, Reply, endpoint, json_body


@functions_framework.http
@endpoint("answer", methods=("POST",), scopes={"POST": "read"}, bucket="agent")
def answer(req: Request, ctx: Context) -> Reply:
    from ragline.retrieval import answer as answers

    result = answers.answer(ctx.session, json_body(req, answers.AnswerRequest))
    if result.error is None:
        return Reply(result.as_dict())
    # Returned, not raised: the transaction must commit so the failed run stays recorded.
    return ctx.error_reply(result.error, run_id=str(result.run_id))
