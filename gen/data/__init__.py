"""Image-caption data: records from folders, COCO and hf sets, safe image decoding, batches, labels, check-data.

The names below are what other parts (the captioner among them) use; each lives in one module here:
records.py reads and checks rows, images.py opens image files, dataset.py turns records into batches,
labels.py maps rows and prompts to class labels.
"""
from gen.data.dataset import (EpochBatchSampler, ImageCaptionDataset, collate, image_to_tensor, load_image,
                              only_labels, read_record_rgb, read_records, read_rgb)
from gen.data.images import UNREADABLE, ImageRejected, skip_reason
from gen.data.labels import caption_labels, labelled, row_name, sample_labels
from gen.data.records import (DataError, Record, SkipLog, clean_texts, file_problem, label_of, read_coco, read_folder,
                              read_prompts, resolve_inside, split_lines)

__all__ = ["UNREADABLE", "DataError", "EpochBatchSampler", "ImageCaptionDataset", "ImageRejected", "Record", "SkipLog",
           "caption_labels", "clean_texts", "collate", "file_problem", "image_to_tensor", "label_of", "labelled",
           "load_image", "only_labels", "read_coco", "read_folder", "read_prompts", "read_record_rgb", "read_records",
           "read_rgb", "resolve_inside", "row_name", "sample_labels", "skip_reason", "split_lines"]
