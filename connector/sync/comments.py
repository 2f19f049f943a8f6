"""The comments step: each NC comment posted once, even when a post's answer was lost.

`comment_links` is reserved (committed) before each post; each posted comment carries its key as a
comment property, and ends with a `[qualio-comment:<key>]` marker line as a fallback (a Jira that drops
properties), so a post whose answer never came is found on the issue instead of posted again. A comment
Jira refuses for good is a failure of that comment alone.
"""

from __future__ import annotations

from datetime import timedelta

from connector import db
from connector.jira.gateway import JiraError
from connector.sync import links
from connector.sync.errors import RetryLater
from connector.sync.plan import PlannedComment
from connector.sync.steps import SyncRun, not_this_steps, refusal

MARKER_PREFIX = "[qualio-comment:"


def post_comments(run: SyncRun, comments: tuple[PlannedComment, ...], search_lag: float) -> int:
    """Post what is not posted yet; returns how many were posted now."""
    if not comments:
        return 0
    uncertain = links.uncertain_comments(run.engine, run.nc_id)  # key -> when its post was started
    already = comments_in_jira(run) if uncertain else {}
    posted = 0
    for comment in comments:
        if comment.key in already:  # an earlier post whose answer we never saw did go through
            links.record_comment(run.engine, run.nc_id, comment.key, already[comment.key], run.claim)
            continue
        if comment.key in uncertain:
            wait = (uncertain[comment.key] + timedelta(seconds=search_lag) - db.now(run.engine)).total_seconds()
            if wait > 0:  # that post may still land: do not post a second copy yet
                raise RetryLater("an earlier comment post may still land in Jira; waiting", delay=wait,
                                 count_attempt=False)
        posted += post_one(run, comment)
    return posted


def post_one(run: SyncRun, comment: PlannedComment) -> int:
    try:
        with run.call() as jira:
            links.reserve_comment(run.engine, run.nc_id, comment.key, run.claim)  # only once the post is sure
            comment_id = jira.add_comment(run.key, comment.body, comment.key)
    except JiraError as exc:
        if not exc.outcome_unknown:
            links.forget_comment(run.engine, run.nc_id, comment.key)
        if not_this_steps(exc):
            raise
        run.failed("comment", f"comment {comment.key!r}: {refusal(exc)}")
        return 0
    links.record_comment(run.engine, run.nc_id, comment.key, comment_id, run.claim)
    run.wrote(f"comment {comment.key!r}")
    run.comments += 1
    return 1


def comments_in_jira(run: SyncRun) -> dict[str, str]:
    """comment key -> comment id for the issue's comments that carry our property, or else our marker line."""
    found: dict[str, str] = {}
    with run.call() as jira:
        comments = jira.comments(run.key)
    for posted in comments:
        last_line = posted.body.rstrip().rsplit("\n", 1)[-1].strip()
        key = posted.comment_key or marker_key(last_line)
        if key:
            found.setdefault(key, posted.id)
    return found


def marker_key(line: str) -> str:
    """The key in a `[qualio-comment:<key>]` line; "" for any other line."""
    if line.startswith(MARKER_PREFIX) and line.endswith("]"):
        return line[len(MARKER_PREFIX):-1]
    return ""
