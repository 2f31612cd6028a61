"""Skull model: CT input, transducer pose, per-element ray tracing, clinical SDR, transmission.

Module map (data flows down this list; lower modules never import higher ones):

- :mod:`.ct` - :class:`SkullCT` (HU sampled at subject world RAS mm), :func:`load_ct`
  (NIfTI or DICOM series, checked to be a head CT in HU), :func:`resample_to_grid`.
- :mod:`.registration` - rigid CT -> MR mutual-information registration, saved as ``.npz``.
- :mod:`.population` - the bundled CT template mapped into a subject through its atlas
  registration, with a diploe restored at a patient SDR (population skull; the patients'
  SDR distribution).
- :mod:`.properties` - HU -> density / speed / attenuation (:class:`BoneAcoustics`: McDannold
  2019, Webb 2018/2021 or Aubry 2003) and plane-wave interface and layer transmission.
- :mod:`.pose` - element positions for a natural focus and beam axis; head-fit check.
- :mod:`.raytrace` - per-element rays: entry/exit, normals, incidence, Snell refraction,
  thickness, transmission, travel-time delay and its uncertainty.
- :mod:`.sdr` - the clinical skull density ratio (Kranion's recipe).
- :mod:`.aberration` - the residual phase error correlated through the bone elements share,
  and the focal FWHM of a drive.
- :mod:`.model` - :func:`model_skull` -> :class:`SkullModel` (report block, per-element
  arrays, focal widths, the population SDR band) and :func:`write_elements_csv`.
- :mod:`.drive` - :func:`skull_drive`: a model's per-element heat-source drive (amplitude,
  phase, refracted sources) and its cache key.
- :mod:`.figure` - the skull QC figure (element map).
- :mod:`.outputs` - the report's skull files (elements CSV, subject-space CT, figure).
- :mod:`.synthetic` - spherical-shell and flat-slab skull CTs with designed profiles (oracles).
"""

from .ct import SkullCT, load_ct, resample_to_grid
from .drive import SkullDrive, skull_drive
from .model import PHASE_CORRECTIONS, SkullModel, model_skull, write_elements_csv
from .pose import HeadFit, array_element_positions, tilted_axis
from .population import POPULATION_WARNING, population_skull
from .properties import BoneAcoustics
from .registration import CtRegistration, load_ct_registration, register_ct_to_mr

__all__ = [
    "SkullCT", "load_ct", "SkullDrive", "skull_drive", "resample_to_grid", "PHASE_CORRECTIONS", "SkullModel", "model_skull",
    "write_elements_csv", "HeadFit", "array_element_positions", "tilted_axis", "POPULATION_WARNING",
    "population_skull", "BoneAcoustics", "CtRegistration", "load_ct_registration", "register_ct_to_mr",
]
