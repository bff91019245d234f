"""The benchmark and scaling report (`make bench`): stacks on free ports, wrk load, one table of ratios."""
