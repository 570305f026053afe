"""Flower App: numpy logistic regression whose server aggregation is a FedHost plugin."""
