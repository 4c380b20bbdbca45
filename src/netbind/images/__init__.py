"""netbind's container images, built offline with podman from ``deploy/`` (``netbind image build``).

``ensure(names)`` builds what is missing or stale and returns the images; ``IMAGES`` lists them;
the bases come from Debian packages (``netbind.images._base``).
"""
from netbind.images._base import BASE_TAG, BUILD_TAG, BaseImageError, ensure_base
from netbind.images._project import ensure_project, project_specs
from netbind.images._build import IMAGES, BuiltImage, ImageBuildError, ImageSpec, ensure, select, tags

__all__ = ["BASE_TAG", "BUILD_TAG", "BaseImageError", "BuiltImage", "IMAGES", "ImageBuildError", "ImageSpec",
           "ensure", "ensure_base", "ensure_project", "project_specs", "select", "tags"]
