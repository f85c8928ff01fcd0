"""relaxomap.train — losses, trainer, evaluation, prediction on clinical files and the ``relaxomap`` CLI."""
