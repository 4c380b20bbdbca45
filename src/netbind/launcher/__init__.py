"""virt-launcher's part: domain building, pod network attachment, hook client."""
