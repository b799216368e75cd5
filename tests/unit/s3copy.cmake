# CopyObject helpers and conditional writes (objstore/s3_copy.c, s3_object.c;
# issue 4): pure helpers and the write conditions over a real LMDB env.
if(TARGET cairn_objstore)
  cairn_unit_test(test_s3_copy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_s3_copy.c
                  LIBS cairn_objstore LABELS quick s3 TIMEOUT 60)
endif()
