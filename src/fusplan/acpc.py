"""The AC-PC frame: origin at the mid-commissural point, axes right, anterior (PC -> AC), superior.

Coordinates named ``acpc_mm`` are in this frame; :meth:`AcpcFrame.to_acpc` and
:meth:`AcpcFrame.to_ras` convert to and from world RAS mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FusplanInputError


@dataclass(frozen=True, eq=False)
class AcpcFrame:
    """The AC-PC frame of the contract.

    Attributes
    ----------
    ac_mm, pc_mm, mcp_mm : ndarray (3,)
        World RAS mm of the anterior and posterior commissures and their midpoint.
    axes : (3, 3) ndarray
        Columns are the unit x (right), y (PC -> AC) and z (superior, in the
        midsagittal plane) directions in world RAS; a proper rotation.
    """

    ac_mm: np.ndarray
    pc_mm: np.ndarray
    mcp_mm: np.ndarray
    axes: np.ndarray

    @classmethod
    def from_landmarks(cls, ac_mm, pc_mm, midline_mm=None, right_hint=(1.0, 0.0, 0.0)) -> AcpcFrame:
        """Build the frame from AC, PC and points of the midsagittal plane.

        Parameters
        ----------
        ac_mm, pc_mm : array_like (3,)
            World RAS mm.
        midline_mm : array_like (n, 3), optional
            Points on the midsagittal plane. The plane is the one containing the
            AC-PC line that fits them best (least squares). Without them (or if
            they are collinear with AC-PC) the plane contains ``right_hint``'s
            normal direction closest to the world's.
        right_hint : array_like (3,)
            Rough direction of the subject's right; fixes the sign of x.
        """
        ac = np.asarray(ac_mm, dtype=float)
        pc = np.asarray(pc_mm, dtype=float)
        y = ac - pc
        length = np.linalg.norm(y)
        if length < 1e-6:
            raise FusplanInputError("AC and PC coincide: the AC-PC frame is undefined")
        y /= length
        mcp = (ac + pc) / 2
        hint = np.asarray(right_hint, dtype=float)
        helper = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        e1 = np.cross(y, helper)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(y, e1)
        normal = hint - (hint @ y) * y
        if midline_mm is not None and len(midline_mm) >= 2:
            q = np.asarray(midline_mm, dtype=float) - mcp
            coords = np.stack([q @ e1, q @ e2], axis=1)
            scatter = coords.T @ coords
            values, vectors = np.linalg.eigh(scatter)
            if values[1] > 1.0:  # the points span a plane with the AC-PC line
                small = vectors[:, 0]
                normal = small[0] * e1 + small[1] * e2
        normal /= np.linalg.norm(normal)
        if normal @ hint < 0:
            normal = -normal
        z = np.cross(normal, y)
        axes = np.stack([normal, y, z / np.linalg.norm(z)], axis=1)
        return cls(ac, pc, mcp, axes)

    def to_acpc(self, ras_mm) -> np.ndarray:
        """World RAS mm ``(..., 3)`` -> AC-PC mm."""
        return (np.asarray(ras_mm, dtype=float) - self.mcp_mm) @ self.axes

    def to_ras(self, acpc_mm) -> np.ndarray:
        """AC-PC mm ``(..., 3)`` -> world RAS mm."""
        return np.asarray(acpc_mm, dtype=float) @ self.axes.T + self.mcp_mm

    @property
    def acpc_length_mm(self) -> float:
        """Distance between AC and PC in mm."""
        return float(np.linalg.norm(self.ac_mm - self.pc_mm))

    def to_dict(self) -> dict:
        """JSON-ready: origin and the x, y, z axes in world RAS."""
        return {
            "origin_mm": rounded(self.mcp_mm),
            "x_axis": rounded(self.axes[:, 0], 6),
            "y_axis": rounded(self.axes[:, 1], 6),
            "z_axis": rounded(self.axes[:, 2], 6),
            "acpc_length_mm": round(self.acpc_length_mm, 3),
        }


def rounded(values, digits: int = 3) -> list[float]:
    """``values`` flattened to a JSON-ready list of floats rounded to ``digits``."""
    return [round(float(v), digits) for v in np.asarray(values).ravel()]
