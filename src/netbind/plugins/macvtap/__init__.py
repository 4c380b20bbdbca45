"""The macvtap binding: a zero-code KubeVirt binding (``domainAttachmentType: tap``) plus its CNI."""
