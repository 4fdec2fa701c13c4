"""Tools for people who write and review policies: ``pdp test`` cases, coverage from
traffic, the impact of a bundle change on recorded decisions, and replay of one
recorded decision. They sit above the decision service and use it as a caller would."""
