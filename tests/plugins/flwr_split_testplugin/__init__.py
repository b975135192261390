"""A third-party package for the tests: one codec and one sampler, declared as entry points.

Nothing imports it by name: flwr-split loads ``codec.Scale`` and
``sampler.Turns`` when asked for ``plugin_scale`` or ``plugin_turns``, because
``flwr_split_testplugin-0.1.dist-info/entry_points.txt`` declares them.
"""
