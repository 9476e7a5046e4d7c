"""Solution: Get, Torrent, Select and both copies move object bytes; Head, tagging and List only
probe, Put writes, and Restore makes a copy inside the bucket."""
answer = {"GetObject", "GetObjectTorrent", "SelectObjectContent", "CopyObject", "UploadPartCopy"}
