"""Solution: encryption stops whoever holds only the ciphertext (a bucket credential, a presigned
link, another contractor's copy); not a principal KMS will decrypt for (the contractor's own
uploads, the ingest role): steps 2 and 3 must stop those."""
answer = {"leaked-bucket-credential", "leaked-presigned-url",
          "contractor-copies-another-contractors-file"}
