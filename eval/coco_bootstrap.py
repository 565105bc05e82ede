"""Paired bootstrap over images for COCO bbox mAP50-95.

:class:`PerImageAP` runs pycocotools' ``evaluate()`` once (matching per image and category)
and keeps, per category, the matched / ignored flags and scores of every detection. The mAP
of any weighting of the images (``weights[i]`` copies of image ``i``, as a bootstrap resample
draws them) then follows from weighted cumulative sums, as ``COCOeval.accumulate`` would
compute it on the resampled image list, without re-matching. With all weights 1 it is
``COCOeval.stats[0]`` exactly. Resampling the same image indices for every condition makes
the comparison paired: differences between conditions on the same images are what varies.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


class PerImageAP:
    """Per-image COCO matches of one set of detections, for weighted (resampled) mAP."""

    def __init__(self, gt: COCO, detections: list[dict], image_ids: list[int]) -> None:
        self.image_ids = list(image_ids)
        self.categories: list[tuple] = []
        self.stats = np.zeros(12)
        if not detections:  # loadRes cannot take an empty list: every AP is 0
            self._recall_thresholds = np.linspace(0, 1, 101)
            self._empty_categories(gt)
            return
        with redirect_stdout(io.StringIO()):
            evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
            evaluator.params.imgIds = self.image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        self.stats = evaluator.stats
        p = evaluator.params
        self._recall_thresholds = p.recThrs
        n_images, n_areas = len(p.imgIds), len(p.areaRng)
        max_det = p.maxDets[-1]
        index = {image_id: i for i, image_id in enumerate(p.imgIds)}
        for k in range(len(p.catIds)):  # area "all" is index 0
            entries = [e for e in evaluator.evalImgs[k * n_areas * n_images:
                                                     k * n_areas * n_images + n_images] if e]
            if not entries:
                continue
            scores = np.concatenate([e["dtScores"][:max_det] for e in entries])
            images = np.concatenate([np.full(len(e["dtScores"][:max_det]), index[e["image_id"]])
                                     for e in entries]).astype(int)
            matched = np.concatenate([e["dtMatches"][:, :max_det] for e in entries], axis=1)
            ignored = np.concatenate([e["dtIgnore"][:, :max_det] for e in entries], axis=1)
            order = np.argsort(-scores, kind="mergesort")  # as COCOeval.accumulate sorts
            gt_count = np.zeros(n_images)
            for e in entries:
                gt_count[index[e["image_id"]]] += np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            tp = np.logical_and(matched, ~ignored.astype(bool))[:, order].astype(float)
            fp = np.logical_and(~matched.astype(bool), ~ignored.astype(bool))[:, order].astype(float)
            self.categories.append((images[order], tp, fp, gt_count))

    def _empty_categories(self, gt: COCO) -> None:
        """Categories with ground truth among the images, for an empty detection list."""
        n = len(self.image_ids)
        index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        for cat in gt.getCatIds():
            gt_count = np.zeros(n)
            for a in gt.loadAnns(gt.getAnnIds(imgIds=self.image_ids, catIds=[cat], iscrowd=False)):
                gt_count[index[a["image_id"]]] += 1
            if gt_count.any():
                self.categories.append((np.zeros(0, int), np.zeros((10, 0)), np.zeros((10, 0)),
                                        gt_count))

    def map(self, weights: np.ndarray | None = None) -> float:
        """mAP50-95 (area all, 100 detections) with image ``i`` counted ``weights[i]`` times."""
        w = np.ones(len(self.image_ids)) if weights is None else np.asarray(weights, float)
        aps = []
        for images, tp, fp, gt_count in self.categories:
            positives = float(w @ gt_count)
            if positives == 0:
                continue  # no ground truth of this category among the drawn images
            wd = w[images]
            tp_sum = np.cumsum(tp * wd, axis=1)
            fp_sum = np.cumsum(fp * wd, axis=1)
            if tp_sum.shape[1] == 0:
                aps.append(np.zeros(tp_sum.shape[0]))
                continue
            recall = tp_sum / positives
            precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            ap = np.empty(len(tp_sum))
            for t in range(len(tp_sum)):
                at = np.searchsorted(recall[t], self._recall_thresholds, side="left")
                ap[t] = np.where(at < len(precision[t]),
                                 precision[t][np.minimum(at, len(precision[t]) - 1)], 0).mean()
            aps.append(ap)
        return float(np.mean(aps)) if aps else 0.0


def resample_weights(n_images: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``(n_resamples, n_images)`` counts of each image in bootstrap draws with replacement.

    Example:
        >>> w = resample_weights(5, 3)
        >>> w.shape, w.sum(axis=1).tolist()
        ((3, 5), [5.0, 5.0, 5.0])
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(n_images, size=(n_resamples, n_images))
    return np.stack([np.bincount(d, minlength=n_images) for d in draws]).astype(float)


def interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The central ``level`` percentile interval of bootstrap values (NaNs dropped)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
