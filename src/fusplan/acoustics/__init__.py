"""Acoustic focus: transducer models, linear pressure field and heat source.

The field is the Rayleigh-Sommerfeld integral of a baffled source in a homogeneous
medium, ``p(x) = (i rho c k / 2 pi) sum_e u_e A_e D_e(x) F_e(x) exp(-i k r_e) / r_e``,
where every array element (or every patch of a single bowl) is a circular piston of
area ``A_e`` with far-field directivity ``D``, exact on-axis near-field factor ``F``
and Fresnel phase (see :mod:`fusplan.acoustics.rayleigh`). The tests check the piston
model against a piston subdivided into point sources, the focused bowl against
O'Neil's on-axis formula (within 1 % from 20 mm off the apex) and the array against its
analytic focal gain.

Modules (data flows down the list):

- :mod:`~fusplan.acoustics.kinds`: the transducer kinds (model names and what each can do);
- :mod:`~fusplan.acoustics.drive`: :class:`ElementDrive`, the per-element drive;
- :mod:`~fusplan.acoustics.transducer`: the ``transducer:`` block (:class:`Transducer`,
  :func:`transducer_from_spec`), :func:`element_layout`, :func:`aberration_phases`;
- :mod:`~fusplan.acoustics.rayleigh`: piston sums (exact at points; blockwise
  separable expansion on a grid), threads;
- :mod:`~fusplan.acoustics.field`: pressure, intensity and heat source on a grid,
  per-element weights and virtual sources for a skull model;
- :mod:`~fusplan.acoustics.oracles`: :func:`bowl_pressure`, :func:`oneil_on_axis_pressure`.

Note (ITRUSST SC1): the lateral -6 dB width oracle 4.23 mm is paraxial; Rayleigh and
full-wave codes converge at 4.17-4.18 mm.

Speed (see :func:`pressure_field`): a blockwise separable expansion of every
element's spherical wave turns the sum over elements into batched complex matrix
products (BLAS) over the whole grid; the exact sum is then recomputed, in float32
chunks on ``threads`` threads, on every voxel whose intensity could exceed 1e-3 of the
peak given the expansion's error (calibrated in each call by exact sums at the cube
corners), so the heat source is the exact Rayleigh sum wherever it exceeds 1e-3 of
its peak.
"""
from .drive import ElementDrive
from .field import heat_source, intensity_field, pressure_at, pressure_field
from .oracles import bowl_pressure, oneil_on_axis_pressure
from .kinds import FOCUSED_BOWL, GAUSSIAN, HEMISPHERICAL_ARRAY, KINDS, TransducerKind
from .transducer import MODELS, Transducer, aberration_phases, element_layout, transducer_from_spec

__all__ = [
    "MODELS",
    "KINDS",
    "TransducerKind",
    "HEMISPHERICAL_ARRAY",
    "FOCUSED_BOWL",
    "GAUSSIAN",
    "Transducer",
    "transducer_from_spec",
    "element_layout",
    "aberration_phases",
    "ElementDrive",
    "pressure_at",
    "pressure_field",
    "intensity_field",
    "heat_source",
    "bowl_pressure",
    "oneil_on_axis_pressure",
]
