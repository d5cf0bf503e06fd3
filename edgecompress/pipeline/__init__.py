"""The one package that calls the stages in order and writes files: load -> (compress) -> convert -> check ->
bench -> validate -> report. One module per verb.

Every output is written atomically (``edgecompress.atomic``): an interrupted run leaves nothing at the output
path that looks finished.
"""

from edgecompress.pipeline.compressing import CompressResult, compress
from edgecompress.pipeline.demo import DEMO_EPOCHS, DEMO_SEED, DemoResult, demo, train_demo_model
from edgecompress.pipeline.deploying import DeployResult, TargetResult, deploy
from edgecompress.pipeline.exporting import ExportResult, export
from edgecompress.pipeline.validating import validate_model

__all__ = ["DEMO_EPOCHS", "DEMO_SEED", "CompressResult", "DemoResult", "DeployResult", "ExportResult", "TargetResult",
           "compress", "demo", "deploy", "export", "train_demo_model", "validate_model"]
