"""FedHost's protocols on Flower: the apps live in fedhost_flower.app."""
