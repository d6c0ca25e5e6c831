"""MLflow models-from-code definition of a registered pruned model.

`robustprune export` logs this file by path (never imports it) with the safe `model.pt`
as an artifact, so loading the registered model runs this code and `torch.load(...,
weights_only=True)`: nothing is unpickled. Input: float32 images (N, C, H, W) in [0, 1];
output: logits (N, classes).
"""
import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel


class PrunedModel(PythonModel):
    def load_context(self, context):
        from trainables.store import load_model  # shipped beside this file via code_paths

        self.model = load_model(context.artifacts["model_file"])

    def predict(self, context, model_input, params=None):
        images = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.model(images).numpy()


mlflow.models.set_model(PrunedModel())
