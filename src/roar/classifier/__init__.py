"""The LightningModule that trains a network of roar.models (normalizing, augmenting, masking at load) and
loading trained ones."""
