# Volumes whose base is a chunk-store manifest and read-only snapshot
# handles (blockstore, issue 7): reads, copy-up, zeroes, block status,
# clones, flatten, resize, fsck and the manifest's reference count, over a
# real pool; prints the create time on 1 GiB and 10 GiB manifests.
if(TARGET cairn_nbd)
  cairn_unit_test(test_bs_image SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_bs_image.c
                  LIBS cairn_nbd LABELS quick block TIMEOUT 600)
endif()
