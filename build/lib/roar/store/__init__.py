"""Every artifact's owner: typed keys (folders, wandb groups, identities), the shard writer and
reader, manifests and seals, atomic writes, the sample formats, and the sharded-stage helper."""
