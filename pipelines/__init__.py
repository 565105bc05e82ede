"""Integrations of dcsc-preproc with detectors and video: Ultralytics YOLO, video, CLIs."""
