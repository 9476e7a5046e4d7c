"""Solution: count distinct keys per principal in 10-minute windows; c02 reads 60 in 5 minutes."""
answer = {"principal": "arn:aws:sts::123456789012:assumed-role/securepipe-contractor/c02"}
