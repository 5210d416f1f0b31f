"""The continual learner and its parts: configs and presets, the networks (A.1), the loss terms (eq. 3,
7-9), atypicality and masks (eq. 4-5, A.2), environment inference (eq. 6, Algorithm 1), dreaming,
checkpoints, and ``ContinualLearner``, which composes them. Imports nothing above ``vase_rl.data``."""
