"""Solution: a validated SampleContext naming contractor, sample and purpose."""
from securepipe.encryption import SampleContext

answer = SampleContext(contractor="c07", sample_id="spk03_u2", purpose="speech-model-training")
