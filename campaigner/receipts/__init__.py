"""Delivery receipts, inbound messages and opt-outs: parsed (parse), stored in the workspace's
receipts.sqlite (store), opt-outs decided (suppression, stopwords), received over HTTP
(receiver) and served alone by ``campaigner receive`` (serve)."""
