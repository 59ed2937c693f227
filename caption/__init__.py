"""caption: ResNet → GPT-2 captioner that reads images back into text and judges generated ones."""
