"""Mail: IMAP connections and folder sync, MIME parsing, conversations, SMTP and the outbox."""
