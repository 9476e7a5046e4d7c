"""Solution: old versions, hidden versions, parts, archives and key backups; not the marker."""
answer = {"noncurrent-versions", "delete-marker-hidden-versions", "unfinished-multipart-uploads",
          "archive-copies", "key-registry-backups"}
