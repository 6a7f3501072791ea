"""Layer-level primitives shared by the scores and the recoveries (torch and timm only, no pait policy).

``taps`` (which module applies a weight, and one hook mechanism for every call's input and output,
attention projections included through ``attention``), ``conv`` (padding and unfolded patches),
``modes`` (eval mode, requiring grad) and ``inverses`` (the damped inverses, one per rule).
"""
