"""The payload the mapping preview starts with: the README's example of an NC with a comment."""

SAMPLE_PAYLOAD = """{
  "eventType": "nc.comment_added",
  "ncId": "NC-2025-002",
  "timestamp": "2025-01-05T10:15:32Z",
  "title": "Label printer misprints lot numbers",
  "status": "under_investigation",
  "severity": "major",
  "changedFields": ["comments"],
  "comment": {"id": "c-1001", "author": "dana@example.com", "createdAt": "2025-01-05T10:15:32Z",
              "body": "Root cause: firmware 2.3 on printer P-4."}
}"""
