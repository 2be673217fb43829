"""Model training and evaluation: `finmon train` (train.py) and `finmon evaluate` (evaluate.py).

args (the train command's argument dataclasses), data (labelled files, stratified splits), metrics (scores and
reports), trainer (the optimisation loop), pseudo (self-training labels), soup (two-model weight average),
card (the model card) and finalize (save the model, metrics.json and card). Nothing is imported here, so
`import pipelines.training.data` does not pull in torch.
"""
