# CopyObject and conditional writes (objstore/s3_copy.c, s3_object.c; issue
# 4): pure helpers, the write conditions over a real LMDB env, and CopyObject
# through the server with records edited in LMDB (5 GiB cap, checksum field).
if(TARGET cairn_objstore)
  cairn_unit_test(test_s3_copy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_copy.c
                  ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_util.c
                  LIBS cairn_objstore PkgConfig::CURL PkgConfig::SSL LABELS quick s3 TIMEOUT 60)
endif()

# Multipart objects' part sizes across record fields (objstore/s3_multipart.c).
if(TARGET cairn_objstore)
  cairn_unit_test(test_s3_parts SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_parts.c
                  LIBS cairn_objstore LABELS quick s3 TIMEOUT 60)
endif()
