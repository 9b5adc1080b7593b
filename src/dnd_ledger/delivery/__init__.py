"""Changes flowing out of the ledger: signed webhooks to subscribers, NATS JetStream."""
