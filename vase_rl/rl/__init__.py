"""VASE in the agent's loop: which spaces are images (``image_space``), the online engine that encodes
frames and trains the learner from rollouts (``online`` with its ``buffer`` and ``inference_copy``), and
the gymnasium wrappers (``wrapper``, ``vector_wrapper``). Imports only the core."""
