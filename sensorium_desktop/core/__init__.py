"""Pure-numpy core: samples, attribute schemas, clock models, grouping, policies, codecs.

Nothing in this package imports Qt, Redis or does I/O.
"""
