"""Parse stage: cfg text in, a typed, frozen layer graph (:class:`Network`) out.

The Lark grammar reads Darknet's cfg syntax into sections; the registry gives every section kind its
options and Darknet's defaults; the shape rules give outputs, records, parameters and BFLOPs. No torch.
"""

from darkconv.parse.graph import Layer, Network, load_network, parse_network, write_network

__all__ = ["Layer", "Network", "load_network", "parse_network", "write_network"]
