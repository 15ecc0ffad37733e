"""The open-set decision: a name only when the face is close AND clearly closer to one person.

CompreFace's users were hurt by the opposite (the nearest enrolled person always returned,
strangers named at high similarity). Here a face is "unknown" unless its nearest enrolled
embedding is below `threshold` and the nearest embedding of any *other* person is at least
`margin` farther. Distances are Euclidean between dlib descriptors: dlib's own same-person
cut is 0.6; the default below was chosen on the development split of the faces corpus.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

DEFAULT_THRESHOLD = 0.55
DEFAULT_MARGIN = 0.05
REVIEW_BAND = 0.08
"""Unknown faces this far beyond the threshold go to the review queue. On the development
part the first stranger was named at threshold 0.65, so the band (to 0.63) stops short of
where strangers begin."""
CANDIDATE_THRESHOLDS = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
NEIGHBOURS = 20
"""Nearest embeddings fetched per face: enough to find the second-best other person even
when the best has many enrolled photos."""

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Decision(Generic[K]):
    person: K | None
    """None: unknown."""
    distance: float | None
    """To the nearest enrolled face (whoever it is)."""
    runner_up: float | None
    """To the nearest face of a different person."""
    reason: str
    """matched | no_enrolled_faces | too_far | ambiguous"""
    confidence: float = 0.0
    """How far inside the threshold a match is, 0 to 1 (0 for unknown)."""
    nearest: K | None = None
    """The nearest enrolled person, named or not: the candidate a teacher reviews."""

    def doubtful(self, threshold: float) -> bool:
        """Unknown, but close enough that a teacher should look: ambiguous between two
        people, or just beyond the threshold (within `REVIEW_BAND`)."""
        if self.person is not None or self.distance is None:
            return False
        return self.reason == "ambiguous" or self.distance < threshold + REVIEW_BAND


def decide(neighbours: Iterable[tuple[K, float]], threshold: float, margin: float) -> Decision[K]:
    """`neighbours`: (person, distance) of enrolled faces, any order, several per person."""
    best: dict[K, float] = {}
    for person, distance in neighbours:
        if distance < best.get(person, float("inf")):
            best[person] = distance
    if not best:
        return Decision(None, None, None, "no_enrolled_faces")
    ranked = sorted(best.items(), key=lambda item: item[1])
    person, distance = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else None
    if distance >= threshold:
        return Decision(None, distance, runner_up, "too_far", nearest=person)
    if runner_up is not None and runner_up - distance < margin:
        return Decision(None, distance, runner_up, "ambiguous", nearest=person)
    confidence = round(max(0.0, 1.0 - distance / threshold), 3)
    return Decision(person, distance, runner_up, "matched", confidence, person)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    threshold: float
    genuine_attempts: int
    """Faces whose person has another enrolled face to be found by."""
    true_accepts: int
    false_rejects: int
    """Genuine faces answered "unknown"."""
    misidentified: int
    """Genuine faces named as somebody else."""
    impostor_attempts: int
    """Every face again, with all of its person's faces removed: a stranger."""
    false_accepts: int

    @property
    def false_accept_rate(self) -> float:
        wrong = self.false_accepts + self.misidentified
        return wrong / max(self.impostor_attempts + self.genuine_attempts, 1)

    @property
    def false_reject_rate(self) -> float:
        return self.false_rejects / max(self.genuine_attempts, 1)


def leave_one_out(
    people: Sequence[uuid.UUID],
    vectors: npt.NDArray[np.float32],
    thresholds: Sequence[float],
    margin: float,
) -> list[OperatingPoint]:
    """Each enrolled face recognised against all the others (genuine) and against everyone
    but its own person (a stranger), at each threshold."""
    count = len(people)
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    points = []
    for threshold in thresholds:
        genuine = accepts = rejects = wrong = impostors = false_accepts = 0
        for i in range(count):
            others = [(people[j], float(distances[i, j])) for j in range(count) if j != i]
            if any(person == people[i] for person, _ in others):
                genuine += 1
                decision = decide(others, threshold, margin)
                if decision.person == people[i]:
                    accepts += 1
                elif decision.person is None:
                    rejects += 1
                else:
                    wrong += 1
            strangers = [(person, d) for person, d in others if person != people[i]]
            if strangers:
                impostors += 1
                false_accepts += decide(strangers, threshold, margin).person is not None
        points.append(
            OperatingPoint(threshold, genuine, accepts, rejects, wrong, impostors, false_accepts)
        )
    return points
