"""Bounds on what a peer may claim: sample counts, compute times, sizes, nesting.

Every number a client or a server sends is checked against these before it is
used to size anything (a plan, an allocation, the simulated clock). They are far
above any honest value of this project's tasks and far below what would hurt.
"""

from __future__ import annotations

MAX_SAMPLES = 2**24
"""Largest ``train_count`` / ``test_count`` a client may claim, and largest slice count,
offset or epoch a step order may carry (16.8 M samples: no partition here comes close)."""
MAX_COMPUTE_SECONDS = 3600.0
"""Largest compute time one reply may book on the simulated clock (also capped by the
step timeout: a client cannot have computed longer than the server waited)."""
MAX_REPLY_BYTES = 256 * 2**20
"""Largest total of array data and metadata text one message may carry (256 MiB)."""
MAX_NPY_HEADER = 10_000
"""Largest ``.npy`` header accepted (NumPy's own default ``max_header_size``)."""
MAX_META_CHARS = 2**16
"""Largest JSON metadata text of an encoded tensor (an honest one is under 300 characters)."""
MAX_META_DEPTH = 8
"""Deepest nesting of JSON metadata (an honest one has depth 2: an object of lists)."""
MAX_REASON_CHARS = 300
"""Longest rejection reason kept (an exception's text may quote the hostile input)."""
FEDAVG_NORM_RATIO = 10.0
"""A FedAvg upload whose weight norm exceeds this multiple of the reference norm
(the server's current bottom, or the median upload when that is zero) is rejected."""
GRADIENT_GAIN_RATIO = 20.0
"""Under ``every_step``, a bottom gradient whose gain (its norm over the norm of the
cut-layer gradient the server sent) exceeds this multiple of the step's median gain
is rejected. Honest clients reached at most 5.6x in 1,600 measured steps (tasks
digits, mnist1d, shakespeare; samplers ugs, lds, fls, fpls; lossy downlinks)."""
ACTIVATION_RMS_RATIO = 20.0
"""Activations whose root mean square exceeds this multiple of the step's median
over the clients are rejected before the top's step (`TopTrainer`). Honest clients
reached at most 3.1x in 1,140 measured steps (digits IID and non-IID, mnist1d,
shakespeare; every sync mode; identity, top-k and fedlite uplinks)."""
