"""One readable file per network: ``unet`` (Jansson et al. 2017), ``convtasnet``, ..."""
