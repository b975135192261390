"""Starting Flower processes on this machine: a simulation SuperLink, a deployment cluster."""
